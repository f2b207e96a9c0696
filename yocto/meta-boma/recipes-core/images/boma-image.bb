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
IMAGE_INSTALL = "packagegroup-core-boot boma boma-init \
                 kernel-module-nf-tables kernel-module-nft-nat kernel-module-nft-masq kernel-module-nft-redir"

IMAGE_FSTYPES = "wic.bz2 wic.bmap"
