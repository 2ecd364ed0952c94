#!/bin/sh
# Containers have no init system: packages must never try to start their
# services while an image is built (Debian's invoke-rc.d honours this file).
exit 101
