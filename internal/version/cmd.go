package version

import (
	"flag"
	"fmt"
	"io"
)

// NotYet is the body of a binary whose job has not been delivered yet. It
// parses the binary's flags (so --help is real) and then says plainly that it
// does nothing, exiting non-zero, instead of pretending to work.
func NotYet(fs *flag.FlagSet, args []string, stderr io.Writer, what, issue string) int {
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stderr, "%s %s\n", fs.Name(), Version)
		return 0
	}
	fmt.Fprintf(stderr, "%s: %s is not implemented yet (tracked in %s); this build does nothing.\n", fs.Name(), what, issue)
	return 3
}
