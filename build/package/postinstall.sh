#!/bin/sh
set -e
chown dock-agent:dock-agent /var/lib/dock-agent
chgrp dock-agent /etc/dock-agent/config.json
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  udevadm control --reload-rules >/dev/null 2>&1 || true
  systemctl enable dock-agent.service >/dev/null
  # Start only once the dock id is set.
  grep -q '"CHANGE-ME"' /etc/dock-agent/config.json || systemctl restart dock-agent.service
fi
