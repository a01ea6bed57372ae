package report

import (
	"fmt"
	"io"
)

// Format is one way to write a report: the command line's -o and the
// agent's ?format= name the same ones.
type Format struct {
	Name string
	// Ext is the file name's extension, ContentType the HTTP type.
	Ext, ContentType string
	Write            func(io.Writer, Report) error
}

// Formats are the report's formats.
var Formats = []Format{
	{Name: "md", Ext: "md", ContentType: "text/markdown; charset=utf-8", Write: Markdown},
	{Name: "json", Ext: "json", ContentType: "application/json", Write: JSON},
	{Name: "html", Ext: "html", ContentType: "text/html; charset=utf-8", Write: HTML},
}

// FormatOf returns the format named name, or an error that lists them.
func FormatOf(name string) (Format, error) {
	for _, f := range Formats {
		if f.Name == name {
			return f, nil
		}
	}
	return Format{}, fmt.Errorf("no report format %q: use md, json or html", name)
}
