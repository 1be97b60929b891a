package netconf

import "regexp"

// PCIAddressPattern is a full, lowercase PCI address in the
// "domain:bus:slot.function" form the kernel uses in sysfs, such as
// "0000:00:05.0".
const PCIAddressPattern = `^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$`

var pciAddress = regexp.MustCompile(PCIAddressPattern)

// ValidPCIAddress reports whether addr matches PCIAddressPattern.
func ValidPCIAddress(addr string) bool { return pciAddress.MatchString(addr) }
