package udev

import (
	"fmt"
	"strings"
)

// Topology is where a board's bays sit on its USB, as the kernel names the devices
// (udevadm info -a /dev/ttyACM0): for each bay, the interface its camera's serial port
// hangs under and the USB device its camera's storage hangs under.
type Topology struct {
	Name string
	Bays []Bay
}

// Bay is one bay's USB port.
type Bay struct {
	Serial  string // KERNELS of the camera's serial interface, e.g. 1-1.1:1.0
	Storage string // KERNELS of a USB device the camera's disk hangs under, e.g. 1-1.1
}

// CM4Dock4 is the rpi-cm4-dock4 carrier: a hub on the CM4's port 1, bay N on its port
// N+1; a camera is one composite device (CDC-ACM interface 0, mass storage). The shipped
// 70-dock-bays.rules are Rules(CM4Dock4).
var CM4Dock4 = Topology{Name: "rpi-cm4-dock4", Bays: []Bay{
	{Serial: "1-1.1:1.0", Storage: "1-1.1"},
	{Serial: "1-1.2:1.0", Storage: "1-1.2"},
	{Serial: "1-1.3:1.0", Storage: "1-1.3"},
	{Serial: "1-1.4:1.0", Storage: "1-1.4"},
}}

// QemuVirt is the emulated board of build/vm: qemu's xHCI with a hub on root port 1, bay
// N on its port N+1. qemu has no composite serial-and-storage device, so an emulated camera
// is a hub of its own with the serial port (usb-serial, an FTDI chip) on port 1 and the
// storage (usb-storage) on port 2.
var QemuVirt = Topology{Name: "qemu-virt", Bays: []Bay{
	{Serial: "1-1.1.1:1.0", Storage: "1-1.1"},
	{Serial: "1-1.2.1:1.0", Storage: "1-1.2"},
	{Serial: "1-1.3.1:1.0", Storage: "1-1.3"},
	{Serial: "1-1.4.1:1.0", Storage: "1-1.4"},
}}

const rulesHeader = `# Each bay's USB port is a fixed physical path; the camera in it appears as a CDC-ACM serial
# port and, once unlocked, a mass-storage disk. Name the port /dev/dock/bayN and mount the
# storage read-only at /run/dock/bayN (systemd-mount), so the board definitions stay fixed.
# Adjust KERNELS to the carrier's USB topology (udevadm info -a /dev/ttyACM0).
# Camera storage is hostile input: only FAT and exFAT (what cameras format; ID_FS_TYPE from
# 60-persistent-storage.rules, and forced with --type so the kernel probes no other
# filesystem driver), read-only (the agent deletes over the serial link, never on the
# mount), nosymfollow (kernel 5.10+: a link on the card leads nowhere), nodev, nosuid,
# noexec. Checked by build/udev TestBayMountsAreReadOnlyFATOnly.
`

// Rules is the udev rules file for a board's topology: the shipped one for CM4Dock4
// (generated from build/udev/topology.go: keep the two equal, TestShippedRulesAreCM4Dock4).
func Rules(t Topology) string {
	var b strings.Builder
	b.WriteString(rulesHeader)
	if t.Name != CM4Dock4.Name {
		fmt.Fprintf(&b, "# USB topology: %s.\n", t.Name)
	}
	for i, bay := range t.Bays {
		fmt.Fprintf(&b, "SUBSYSTEM==\"tty\", KERNELS==\"%s\", SYMLINK+=\"dock/bay%d\", GROUP=\"dialout\", MODE=\"0660\"\n", bay.Serial, i)
	}
	for i, bay := range t.Bays {
		fmt.Fprintf(&b, "SUBSYSTEM==\"block\", ENV{DEVTYPE}==\"partition\", ENV{ID_FS_TYPE}==\"vfat|exfat\", KERNELS==\"%s\", ACTION==\"add\", RUN{program}+=\"/usr/bin/systemd-mount --no-block --type=$env{ID_FS_TYPE} -o ro,nosymfollow,nodev,nosuid,noexec --collect $devnode /run/dock/bay%d\"\n", bay.Storage, i)
	}
	b.WriteString("SUBSYSTEM==\"gpio\", KERNEL==\"gpiochip*\", GROUP=\"gpio\", MODE=\"0660\"\n")
	return b.String()
}
