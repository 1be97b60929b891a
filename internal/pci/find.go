package pci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrMACNotFound means no PCI network device has the MAC asked for.
var ErrMACNotFound = errors.New("no PCI network device has this MAC")

// Netdev is a kernel network interface that belongs to a PCI device.
type Netdev struct {
	Name string
	MAC  string
}

// netdevGlobs are where a PCI device's netdevs live: directly under the PCI
// device for most NICs, under its virtioN child for virtio-net.
var netdevGlobs = [][]string{
	{"*", "net", "*", "address"},
	{"*", "virtio*", "net", "*", "address"},
}

// NormalizeMAC parses mac and returns it in the kernel's form
// (lowercase, colon-separated).
func NormalizeMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(mac))
	if err != nil {
		return "", fmt.Errorf("invalid MAC %q: %w", mac, err)
	}
	return hw.String(), nil
}

// FindByMAC returns the address of the PCI device whose netdev has the MAC.
// It looks once; use WaitForMAC for a device that may still be appearing.
// The error wraps ErrMACNotFound when no device has it.
func (s *SysFS) FindByMAC(mac string) (string, error) {
	want, err := NormalizeMAC(mac)
	if err != nil {
		return "", err
	}
	var found []string
	devices := s.path("bus", "pci", "devices")
	for _, g := range netdevGlobs {
		matches, err := filepath.Glob(filepath.Join(append([]string{devices}, g...)...))
		if err != nil {
			return "", fmt.Errorf("scan PCI netdevs for MAC %s: %w", want, err)
		}
		for _, m := range matches {
			v, err := readTrim(m)
			if err != nil {
				continue // the netdev vanished while we looked: not ours
			}
			if strings.EqualFold(v, want) {
				rel, err := filepath.Rel(devices, m)
				if err != nil {
					continue
				}
				found = append(found, strings.SplitN(rel, string(filepath.Separator), 2)[0])
			}
		}
	}
	found = dedup(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("MAC %s: %w", want, ErrMACNotFound)
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("MAC %s is on more than one PCI device (%s)", want, strings.Join(found, ", "))
	}
}

// WaitForMAC waits until a PCI device with a netdev of this MAC is present and
// returns its address. It polls every poll interval until ctx ends; the
// error then names the MAC and how long it waited.
func (s *SysFS) WaitForMAC(ctx context.Context, mac string) (string, error) {
	start := time.Now()
	t := time.NewTicker(s.pollInterval)
	defer t.Stop()
	for {
		addr, err := s.FindByMAC(mac)
		if err == nil || !errors.Is(err, ErrMACNotFound) {
			return addr, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no PCI network device with MAC %s appeared within %s (is the port attached to this VM?): %w",
				mac, time.Since(start).Round(time.Millisecond), errors.Join(ErrMACNotFound, ctx.Err()))
		case <-t.C:
		}
	}
}

// Netdevs returns the network interfaces of the PCI device, none when it is
// bound to a driver that makes no netdev (uio_pci_generic, vfio-pci).
func (s *SysFS) Netdevs(addr string) ([]Netdev, error) {
	if !ValidAddress(addr) {
		return nil, fmt.Errorf("invalid PCI address %q", addr)
	}
	var out []Netdev
	for _, g := range netdevGlobs {
		matches, err := filepath.Glob(filepath.Join(append([]string{s.devicePath(addr)}, g[1:]...)...))
		if err != nil {
			return nil, fmt.Errorf("scan netdevs of PCI device %s: %w", addr, err)
		}
		for _, m := range matches {
			mac, err := readTrim(m)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				return nil, fmt.Errorf("read netdev address of PCI device %s: %w", addr, err)
			}
			out = append(out, Netdev{Name: filepath.Base(filepath.Dir(m)), MAC: mac})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// WaitForNetdev waits until the PCI device has a netdev with the MAC (after a
// rebind to its kernel driver) and returns the netdev's name.
func (s *SysFS) WaitForNetdev(ctx context.Context, addr, mac string) (string, error) {
	want, err := NormalizeMAC(mac)
	if err != nil {
		return "", err
	}
	t := time.NewTicker(s.pollInterval)
	defer t.Stop()
	for {
		nds, err := s.Netdevs(addr)
		if err != nil {
			return "", err
		}
		for _, nd := range nds {
			if strings.EqualFold(nd.MAC, want) {
				return nd.Name, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("PCI device %s has no netdev with MAC %s yet: %w", addr, want, ctx.Err())
		case <-t.C:
		}
	}
}

func dedup(in []string) []string {
	sort.Strings(in)
	var out []string
	for _, v := range in {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}
