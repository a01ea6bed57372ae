package cli

import "io"

// AssumeTerminal makes the command line take standard input for a
// terminal, where a person answers its questions; the returned function
// undoes it.
func AssumeTerminal() (undo func()) {
	old := isTerminal
	isTerminal = func(io.Reader) bool { return true }
	return func() { isTerminal = old }
}
