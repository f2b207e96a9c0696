# boma's A/B boot script (U-Boot 2023.01 hush). Debian's U-Boot runs it through distro_bootcmd
# from the FAT partition named by ${devtype} ${devnum}:${distro_bootpart}; boma-image wraps it in
# a legacy script header as boot.scr. See docs/updates.md for the protocol.
#
# State (abstate.env, and abstate.bak if the first copy's CRC fails), written by boma and here:
#   boma_slot    the committed slot, a or b
#   boma_try     the slot on trial after an update (absent: none)
#   boma_tries   trial boots left for it
#   boma_tryver  the version on trial (for the report)
#   boma_failed  the version whose trial ran out (boma reports and clears it)
setenv boma_slot a
setenv boma_try
setenv boma_tries 0
setenv boma_tryver
setenv boma_failed
setenv boma_state
for f in abstate.env abstate.bak; do
  if test -z "${boma_state}"; then
    if load ${devtype} ${devnum}:${distro_bootpart} ${pxefile_addr_r} ${f}; then
      if env import -c ${pxefile_addr_r} 0x1000 boma_slot boma_try boma_tries boma_tryver boma_failed; then
        setenv boma_state ${f}
      fi
    fi
  fi
done
if test "${boma_slot}" != a && test "${boma_slot}" != b; then setenv boma_slot a; fi
setenv boma_boot ${boma_slot}
setenv boma_trial
if test -n "${boma_try}"; then
  if test "${boma_try}" != a && test "${boma_try}" != b; then
    setenv boma_try
  elif test "${boma_tries}" -gt 0; then
    setexpr boma_tries ${boma_tries} - 1
    setenv boma_boot ${boma_try}
    setenv boma_trial " boma.trial=1"
    echo "boma: trial boot of slot ${boma_try} (${boma_tries} more after this one)"
  else
    echo "boma: slot ${boma_try} used up its trial boots; back to slot ${boma_slot}"
    setenv boma_failed ${boma_tryver}
    setenv boma_try
    setenv boma_tryver
  fi
  # Both copies, one after the other: a power cut leaves one of them whole.
  env export -c -s 0x1000 ${pxefile_addr_r} boma_slot boma_try boma_tries boma_tryver boma_failed
  fatwrite ${devtype} ${devnum}:${distro_bootpart} ${pxefile_addr_r} abstate.env 0x1000
  fatwrite ${devtype} ${devnum}:${distro_bootpart} ${pxefile_addr_r} abstate.bak 0x1000
fi
# The kernel command line: the Pi firmware's (cmdline.txt, also QEMU's -append), else cmdline.env.
setenv boma_args
if fdt addr ${fdt_addr} && fdt get value boma_args /chosen bootargs && test -n "${boma_args}"; then
  echo "boma: command line from the firmware"
elif load ${devtype} ${devnum}:${distro_bootpart} ${pxefile_addr_r} cmdline.env; then
  env import -t -r ${pxefile_addr_r} ${filesize} boma_args
fi
if test "${boma_boot}" = a; then setenv boma_other b; else setenv boma_other a; fi
for s in ${boma_boot} ${boma_other}; do
  # vmlinuz is gzipped: booti inflates it through kernel_comp_addr_r, 0x9f80000 above the load
  # address (0x0a000000 on the Pi, above the firmware's or QEMU's DTB; 0x4a380000 on virt).
  if load ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} ${s}/vmlinuz && setenv kernel_comp_size ${filesize} && load ${devtype} ${devnum}:${distro_bootpart} ${ramdisk_addr_r} ${s}/initrd.img; then
    setexpr kernel_comp_addr_r ${kernel_addr_r} + 0x9f80000
    if test "${s}" != "${boma_boot}"; then setenv boma_trial; fi
    setenv bootargs "${boma_args} panic=10 boma.slot=${s}${boma_trial}"
    echo "boma: booting slot ${s}"
    # Hand Linux the USB controller as U-Boot's preboot `usb start` found it, stopped.
    usb stop
    booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}
  fi
  echo "boma: slot ${s} did not boot"
done
reset
