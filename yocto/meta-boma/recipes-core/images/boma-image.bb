SUMMARY = "boma gateway image: busybox, boma and its init, nothing else"
DESCRIPTION = "A small image for Raspberry Pi machines (meta-raspberrypi) running boma \
               under busybox init (INIT_MANAGER = mdev-busybox)."
HOMEPAGE = "https://github.com/boma-gateway/boma"
BUGTRACKER = "https://github.com/boma-gateway/boma/issues"
SECTION = "images"
CVE_PRODUCT = "boma"
LICENSE = "MIT"

inherit core-image

# A root shell on the serial console, as on boma's SD image (whoever holds the board's UART can
# reach its card anyway); no network login.
# nooelint: oelint.var.badimagefeature.empty-root-password,oelint.var.badimagefeature.serial-autologin-root
IMAGE_FEATURES = "empty-root-password serial-autologin-root"
IMAGE_LINGUAS = ""
# The kernel modules of boma's nftables table (NAT, masquerade, redirect, conntrack state for
# the WAN's replies) and of a bridged LAN; busybox udhcpc for a DHCP WAN comes with busybox.
IMAGE_INSTALL = "packagegroup-core-boot boma boma-init \
                 kernel-module-nf-tables kernel-module-nft-chain-nat kernel-module-nft-nat \
                 kernel-module-nft-masq kernel-module-nft-redir kernel-module-nft-ct \
                 kernel-module-bridge"

IMAGE_FSTYPES = "wic.bz2 wic.bmap"
WKS_FILE = "boma-rpi.wks"

# busybox init supervises boma: one respawn line in oe-core's inittab (busybox-inittab), added
# for this image only.
ROOTFS_POSTPROCESS_COMMAND += "boma_inittab"
boma_inittab[doc] = "Adds the respawn line for boma-supervise to busybox-inittab's /etc/inittab"
boma_inittab() {
    echo "::respawn:${sbindir}/boma-supervise" >> ${IMAGE_ROOTFS}${sysconfdir}/inittab
}
