package binding

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
)

// NetnsGone says whether the network namespace at path no longer exists:
// nothing is there, or what is there is not a network namespace (the
// runtime removed the sandbox, or the VM rebooted and /run is empty). Any
// other failure to open it is an error: it may still exist.
func NetnsGone(path string) (bool, error) {
	n, err := ns.GetNS(path)
	if err == nil {
		_ = n.Close()
		return false, nil
	}
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	if errors.As(err, &notExist) || errors.As(err, &notNS) {
		return true, nil
	}
	return false, fmt.Errorf("open netns %s: %w", path, err)
}
