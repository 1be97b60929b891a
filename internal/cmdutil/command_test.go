package cmdutil

import (
	"context"
	"errors"
	"flag"
	"io"
	"testing"
)

// TestCommandRun: the exit codes of a binary's main, and that Validate and
// Serve see the parsed flags.
func TestCommandRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		args        []string
		validateErr error
		serveErr    error
		want        int
		served      bool
	}{
		{"serves", []string{"--name=x"}, nil, nil, 0, true},
		{"serving fails", []string{"--name=x"}, nil, errors.New("boom"), 1, true},
		{"invalid options", []string{"--name=x"}, errors.New("--name: bad"), nil, 2, false},
		{"unknown flag", []string{"--nope"}, nil, nil, 2, false},
		{"help", []string{"-h"}, nil, nil, 0, false},
		{"version", []string{"--version"}, nil, nil, 0, false},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		name := fs.String("name", "", "a name")
		var validated, served string
		got := Command{Name: "test", Flags: fs,
			Validate: func() error { validated = *name; return tc.validateErr },
			Serve: func(ctx context.Context) error {
				if ctx.Err() != nil {
					t.Errorf("%s: served with an ended context", tc.name)
				}
				served = *name
				return tc.serveErr
			}}.Run(tc.args)
		if got != tc.want || (served == "x") != tc.served {
			t.Errorf("%s: exit %d, served %v; want %d, %v", tc.name, got, served == "x", tc.want, tc.served)
		}
		if tc.want != 2 && tc.served && validated != "x" {
			t.Errorf("%s: validated %q before the flags were parsed", tc.name, validated)
		}
		for _, f := range []string{"version", "v", "logtostderr"} {
			if fs.Lookup(f) == nil {
				t.Errorf("%s: no --%s", tc.name, f)
			}
		}
	}
}
