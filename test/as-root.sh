#!/bin/sh
# Run a command as root: directly when we are root, otherwise through sudo.
if [ "$(id -u)" -eq 0 ]; then
	exec "$@"
fi
exec sudo --preserve-env=DEBIAN_FRONTEND "$@"
