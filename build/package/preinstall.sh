#!/bin/sh
set -e
getent group gpio >/dev/null || addgroup --system gpio
getent passwd dock-agent >/dev/null || adduser --system --group --home /var/lib/dock-agent --no-create-home dock-agent
adduser dock-agent dialout >/dev/null 2>&1 || true
adduser dock-agent gpio >/dev/null 2>&1 || true
