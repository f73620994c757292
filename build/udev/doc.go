// Package udev holds the dock's shipped udev rules (70-dock-bays.rules, installed by the
// .deb); it has no code, only the test that checks how the rules mount camera storage.
package udev
