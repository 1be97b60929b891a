package daemon

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsValidateNamesEveryBadFlag(t *testing.T) {
	t.Parallel()
	o := Defaults()
	o.NodeName, o.Socket, o.SysfsRoot, o.NodeNetns, o.InterfacesTimeout, o.DeviceTimeout = "", "rel.sock", "sys", "node1", time.Millisecond, 0
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate accepted bad options")
	}
	for _, flag := range []string{"--node-name", "--socket", "--sysfs-root", "--node-netns", "--interfaces-timeout", "--device-timeout"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error %q does not name %s", err, flag)
		}
	}
	good := Defaults()
	good.NodeName = "n1"
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults with a node name: %v", err)
	}
}

func TestWaitersWakeOnChangeOnly(t *testing.T) {
	t.Parallel()
	w := newWaiters()
	key := keyOf("ns", "a")
	c := w.next(key)
	w.changed(keyOf("ns", "b"))
	select {
	case <-c:
		t.Fatal("woken by another key's change")
	default:
	}
	w.changed(key)
	select {
	case <-c:
	default:
		t.Fatal("not woken by its key's change")
	}
	if w.next(key) == c {
		t.Fatal("a closed channel was handed out again")
	}
}

// TestOptionsValidateOrderIsStable: the errors come out in one order, the
// same on every call, so that logs and tests can compare them.
func TestOptionsValidateOrderIsStable(t *testing.T) {
	t.Parallel()
	o := Defaults()
	o.NodeName, o.Socket, o.SysfsRoot, o.CheckpointDir, o.DevInfoRoot = "n1", "/run/x.sock", "sys", "ckpt", "devinfo"
	want := "--sysfs-root: \"sys\" must be an absolute path\n" +
		"--checkpoint-dir: \"ckpt\" must be an absolute path\n" +
		"--devinfo-root: \"devinfo\" must be an absolute path"
	for i := range 50 {
		err := o.Validate()
		if err == nil || err.Error() != want {
			t.Fatalf("call %d: Validate = %v\nwant:\n%s", i+1, err, want)
		}
	}
}
