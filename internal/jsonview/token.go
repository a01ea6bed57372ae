package jsonview

import "time"

// KindToken is the document of `siteflip token -o json`.
const KindToken = "token"

// Token is a login token for the dashboard and the links that open it.
type Token struct {
	Header
	Token     string      `json:"token"`
	Role      string      `json:"role"`
	Identity  string      `json:"identity"`
	ExpiresAt time.Time   `json:"expires_at"`
	Links     []TokenLink `json:"links"`
}

// TokenLink opens one location's dashboard with the token.
type TokenLink struct {
	Site string `json:"site"`
	URL  string `json:"url"`
}

// TokenOf is the document of a token.
func TokenOf(token, role, identity string, expires time.Time, links []TokenLink) Token {
	if links == nil {
		links = []TokenLink{}
	}
	return Token{Header: header(KindToken), Token: token, Role: role, Identity: identity, ExpiresAt: utc(expires), Links: links}
}
