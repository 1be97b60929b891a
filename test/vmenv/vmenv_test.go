package vmenv

import (
	"net"
	"testing"
)

// TestIsTaggedFrom: an 802.1Q frame is selected only with the VLAN ID,
// the source MAC and the ARP sender or IPv4 source asked for; an untagged
// frame, a short one and another payload are not.
func TestIsTaggedFrom(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:12:34:56")
	other, _ := net.ParseMAC("fa:16:3e:00:00:01")
	ip := net.ParseIP("10.4.0.7")
	frame := func(vid uint16, src net.HardwareAddr, typ uint16, sender net.IP) []byte {
		f := make([]byte, 60)
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:12], src)
		f[12], f[13] = 0x81, 0x00
		f[14], f[15] = byte(vid>>8)&0x0f|0xe0, byte(vid) // priority 7 must not matter
		f[16], f[17] = byte(typ>>8), byte(typ)
		switch typ {
		case 0x0806:
			copy(f[32:36], sender.To4())
		case 0x0800:
			copy(f[30:34], sender.To4())
		}
		return f
	}
	untagged := make([]byte, 60)
	copy(untagged[6:12], mac)
	untagged[12], untagged[13] = 0x08, 0x00
	copy(untagged[26:30], ip.To4())
	for _, tc := range []struct {
		name string
		f    []byte
		want bool
	}{
		{"ARP request from the pod", frame(101, mac, 0x0806, ip), true},
		{"IPv4 from the pod", frame(101, mac, 0x0800, ip), true},
		{"another VLAN", frame(102, mac, 0x0806, ip), false},
		{"another MAC", frame(101, other, 0x0806, ip), false},
		{"another sender", frame(101, mac, 0x0806, net.ParseIP("10.4.0.8")), false},
		{"IPv6", frame(101, mac, 0x86dd, ip), false},
		{"untagged", untagged, false},
		{"short", frame(101, mac, 0x0806, ip)[:30], false},
	} {
		if got := IsTaggedFrom(tc.f, 101, mac, ip); got != tc.want {
			t.Errorf("%s: IsTaggedFrom = %v, want %v", tc.name, got, tc.want)
		}
	}
}
