#!version:1.0.0.1
## Provisor: boot file of {{ device.mac }}
include:config "{{ provisioning.url }}{{ device.mac }}.cfg"
overwrite_mode = 1
