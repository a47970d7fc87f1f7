#!version:1.0.0.1
## Provisor: common boot file. Device settings come from <mac>.boot and <mac>.cfg.
