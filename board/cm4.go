package board

// CM4Dock is a Raspberry Pi Compute Module 4 carrier with four bays. Pin names are
// periph.io's BCM names (bcm283x driver; on kernels with the GPIO character device,
// gpiochip0 line names). Cameras enumerate as USB CDC-ACM serial ports and USB mass
// storage; a udev rule per bay (build/udev) names the port and mounts the storage.
//
// Presence lines have 10 kOhm external pull-downs and go high when a camera's contact
// closes; charge-enable drives the charger's EN pin (active high); fault LEDs are driven
// through a transistor (active high).
var CM4Dock = register(Board{
	Name:        "rpi-cm4-dock4",
	Description: "Raspberry Pi CM4 carrier, 4 bays",
	Model:       "Raspberry Pi Compute Module 4",
	Thermal:     "/sys/class/thermal/thermal_zone0/temp",
	Slots: []Slot{
		{Presence: "GPIO5", Charge: "GPIO6", Fault: "GPIO13", Serial: "/dev/dock/bay0", Baud: 115200, Mount: "/run/dock/bay0"},
		{Presence: "GPIO19", Charge: "GPIO26", Fault: "GPIO12", Serial: "/dev/dock/bay1", Baud: 115200, Mount: "/run/dock/bay1"},
		{Presence: "GPIO16", Charge: "GPIO20", Fault: "GPIO21", Serial: "/dev/dock/bay2", Baud: 115200, Mount: "/run/dock/bay2"},
		{Presence: "GPIO17", Charge: "GPIO27", Fault: "GPIO22", Serial: "/dev/dock/bay3", Baud: 115200, Mount: "/run/dock/bay3"},
	},
})
