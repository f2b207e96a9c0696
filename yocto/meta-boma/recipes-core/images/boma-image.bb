SUMMARY = "boma gateway image: busybox, boma and its init, nothing else"
DESCRIPTION = "A small image for Raspberry Pi machines (meta-raspberrypi) running boma \
               under busybox init, as the SD-card image built by boma's own image/ builder."
HOMEPAGE = "https://github.com/boma-gateway/boma"
BUGTRACKER = "https://github.com/boma-gateway/boma/issues"
SECTION = "images"
CVE_PRODUCT = "boma"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES = ""
IMAGE_LINGUAS = ""
# busybox init (not systemd or sysvinit) is chosen in the kas file's local.conf.
# The kernel modules of boma's nftables table (NAT, masquerade, redirect, conntrack state for
# the WAN's replies) and of a bridged LAN; busybox udhcpc for a DHCP WAN comes with busybox.
IMAGE_INSTALL = "packagegroup-core-boot boma boma-init \
                 kernel-module-nf-tables kernel-module-nft-chain-nat kernel-module-nft-nat \
                 kernel-module-nft-masq kernel-module-nft-redir kernel-module-nft-ct \
                 kernel-module-bridge"

IMAGE_FSTYPES = "wic.bz2 wic.bmap"
