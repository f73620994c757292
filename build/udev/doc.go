// Package udev owns the dock's shipped udev rules (70-dock-bays.rules, in the .deb): the bays'
// USB topologies as data (real boards, the emulated board) and the rules made from them.
package udev
