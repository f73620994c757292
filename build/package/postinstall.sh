#!/bin/sh
set -e
chown dock-agent:dock-agent /var/lib/dock-agent
chgrp dock-agent /etc/dock-agent/config.json
# The spool is encrypted for this key; it lives in /etc (the board's own storage), never on
# the spool's medium.
/usr/bin/dockagent -init-key /etc/dock-agent/spool.key
chown dock-agent:dock-agent /etc/dock-agent/spool.key
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  # The camera links' serial drivers (modules-load.d/dock-agent.conf), before the unit starts.
  systemctl restart systemd-modules-load.service >/dev/null 2>&1 || true
  udevadm control --reload-rules >/dev/null 2>&1 || true
  # The rules apply to devices already there too (the board's GPIO chips, a camera already
  # seated): udev saw them before the gpio group existed and left them root's alone.
  udevadm trigger --settle --action=change --subsystem-match=gpio --subsystem-match=tty >/dev/null 2>&1 || true
  systemctl enable dock-agent.service >/dev/null
  # Start only once the dock id is set.
  grep -q '"CHANGE-ME"' /etc/dock-agent/config.json || systemctl restart dock-agent.service
fi
