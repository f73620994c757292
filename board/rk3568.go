package board

// RK3568Dock is a Rockchip RK3568 board (Radxa/Firefly-class carrier) with six bays. The
// kernel leaves these lines unnamed, so they are addressed on the GPIO character device
// as gpiochipN/line (RK3568: five banks of 32 lines, gpiochip0..4; GPIO3_B2 is bank 3,
// line 8*1+2 = 10). Cameras enumerate as USB CDC-ACM ports and mass storage, named and
// mounted per bay by udev rules (build/udev).
//
// Presence: open-drain contact to ground with the SoC's pull-up disabled and a 10 kOhm
// external pull-down on the carrier; active high. Charge-enable: the charger's EN pin,
// active high, 3.3 V. Fault LEDs: through an N-MOSFET, active high.
var RK3568Dock = register(Board{
	Name:        "rk3568-dock6",
	Description: "Rockchip RK3568 carrier, 6 bays",
	Model:       "RK3568",
	Thermal:     "/sys/class/thermal/thermal_zone0/temp",
	Slots: []Slot{
		{Presence: "gpiochip3/10", Charge: "gpiochip3/11", Fault: "gpiochip3/12", Serial: "/dev/dock/bay0", Baud: 115200, Mount: "/run/dock/bay0"},
		{Presence: "gpiochip3/13", Charge: "gpiochip3/14", Fault: "gpiochip3/15", Serial: "/dev/dock/bay1", Baud: 115200, Mount: "/run/dock/bay1"},
		{Presence: "gpiochip3/16", Charge: "gpiochip3/17", Fault: "gpiochip3/18", Serial: "/dev/dock/bay2", Baud: 115200, Mount: "/run/dock/bay2"},
		{Presence: "gpiochip4/2", Charge: "gpiochip4/3", Fault: "gpiochip4/4", Serial: "/dev/dock/bay3", Baud: 115200, Mount: "/run/dock/bay3"},
		{Presence: "gpiochip4/5", Charge: "gpiochip4/6", Fault: "gpiochip4/8", Serial: "/dev/dock/bay4", Baud: 115200, Mount: "/run/dock/bay4"},
		{Presence: "gpiochip4/9", Charge: "gpiochip4/10", Fault: "gpiochip4/11", Serial: "/dev/dock/bay5", Baud: 115200, Mount: "/run/dock/bay5"},
	},
})
