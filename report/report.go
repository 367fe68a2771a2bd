// Package report renders one dump's analysis, or a before/after pair's, as
// one self-contained HTML page: it opens offline from the file, with no
// server and no network, everything inlined.
//
// It is data in, HTML out: the caller (vmleak report) reads the dump and
// assembles a Data from the same structures the JSON outputs carry
// (walk.Census, owners.Report, leaks.Result, forensics.Report,
// meminfo.Meminfo, summary.Summary, diff.Diff); nothing here reads a kernel.
//
// The charts are inline SVG drawn here in Go — a squarified treemap of slab
// memory by owner and cache, a stacked bar of meminfo, diverging bars of
// growth — and no JavaScript charting library is used, so the page has no
// size or licence cost beyond its own bytes. A few lines of inline
// JavaScript sort and filter the tables, and nothing else.
//
// Every string from the dump (cache names, module names, call sites, panic
// messages) goes through html/template's contextual escaping, so a crafted
// name renders as text and cannot add markup or script. The page carries a
// strict Content-Security-Policy (default-src 'none'): its one style block
// and one script block are allowed by their SHA-256 hashes, computed as the
// page is rendered, and nothing else may load or run ('unsafe-inline' is
// never given).
package report

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"

	"github.com/vmleak/vmleak/diff"
	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/leaks"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/summary"
	"github.com/vmleak/vmleak/walk"
)

// Data is what one page shows: one dump (Dump) or a pair (Pair).
type Data struct {
	Dump *Dump
	Pair *Pair
}

// Dump is one dump's analysis. Summary is required (the dump's identity);
// every other part may be nil, and the page then says it was not computed
// (Skipped says why, by part: "leaks", "check").
type Dump struct {
	Summary *summary.Summary
	// Info is the dump file's description (vmleak info): format,
	// compression, dump level, pages excluded.
	Info    *kernel.Summary
	Census  *walk.Census
	Owners  *owners.Report
	Meminfo *meminfo.Meminfo
	Leaks   *leaks.Result
	Check   *forensics.Report
	Skipped map[string]string
	// Warnings are the analysis's warnings (kernel, census, owners, ...).
	Warnings []string
}

// Pair is two dumps (or summaries) and what changed between them.
type Pair struct {
	Before, After *summary.Summary
	Diff          *diff.Diff
}

//go:embed page.html
var pageHTML string

//go:embed style.css
var styleCSS string

//go:embed script.js
var scriptJS string

var pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(pageHTML))

// Render writes the page.
func Render(w io.Writer, d *Data) error {
	if (d.Dump == nil) == (d.Pair == nil) {
		return fmt.Errorf("report: give one dump or one pair")
	}
	p := &page{Style: template.CSS(styleCSS), Script: template.JS(scriptJS)}
	p.CSP = "default-src 'none'; style-src " + hash(styleCSS) + "; script-src " + hash(scriptJS) +
		"; img-src 'none'; base-uri 'none'; form-action 'none'"
	var err error
	if d.Dump != nil {
		if p.Single, err = singleView(d.Dump); err != nil {
			return err
		}
		p.Title = "vmleak report: " + p.Single.Ident.File
	} else {
		if p.Pair, err = pairView(d.Pair); err != nil {
			return err
		}
		p.Title = "vmleak comparison: " + p.Pair.Before.File + " → " + p.Pair.After.File
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, p); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// WriteFile renders the page to path.
func WriteFile(path string, d *Data) error {
	var buf bytes.Buffer
	if err := Render(&buf, d); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// hash is a CSP source for an inline block's exact text.
func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
}

// page is the template's input.
type page struct {
	Title  string
	CSP    string
	Style  template.CSS
	Script template.JS
	Single *single
	Pair   *pair
}
