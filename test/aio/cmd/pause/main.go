// Command pause is the all-in-one's sandbox ("pause") container: it holds a
// pod's namespaces open and reaps the children that end up as its own, until
// SIGINT or SIGTERM. It is packaged into a local OCI image (test/aio), so that
// the real nodes need no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
