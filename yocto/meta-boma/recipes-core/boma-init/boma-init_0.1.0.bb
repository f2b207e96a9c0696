SUMMARY = "boma's start-up and shutdown scripts for a busybox-init system"
DESCRIPTION = "boma's start-up (an rcS.d script), shutdown (an rc6.d script), boma-supervise, \
               its udhcpc script and the default boma.toml, from the SD image's overlay."
HOMEPAGE = "https://github.com/boma-gateway/boma"
BUGTRACKER = "https://github.com/boma-gateway/boma/issues"
SECTION = "base"
CVE_PRODUCT = "boma"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# One source of truth: the SD image builder's overlay in boma's tree (this layer lives in it),
# and the tree's LICENSE. oe-core's busybox packages keep their inittab, rcS, rcK, udhcpc
# default.script and mdev.conf: boma's start-up and shutdown are an rcS.d and an rc6.d script.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${THISDIR}/../../../../image/overlay:${THISDIR}/../../../..:"

SRC_URI = "file://LICENSE \
           file://etc/init.d/rcS \
           file://etc/init.d/rcK \
           file://usr/sbin/boma-supervise \
           file://usr/share/udhcpc/boma.script \
           file://etc/boma/boma.toml \
           file://etc/boma/routes.toml"

S = "${UNPACKDIR}"

# Loaded by boma-start after boma starts (image/modules.toml's preload list).
BOMA_MODULES_PRELOAD ?= "nf_tables nft_chain_nat nft_nat nft_masq nft_redir nft_ct bridge"

do_install() {
    install -d ${D}${sysconfdir}/init.d ${D}${sysconfdir}/rcS.d ${D}${sysconfdir}/rc6.d \
               ${D}${sysconfdir}/boma ${D}${sysconfdir}/default ${D}${sbindir} ${D}${datadir}/udhcpc ${D}/data
    install -m 0755 ${S}/etc/init.d/rcS ${D}${sysconfdir}/init.d/boma-start
    install -m 0755 ${S}/etc/init.d/rcK ${D}${sysconfdir}/init.d/boma-stop
    ln -s ../init.d/boma-start ${D}${sysconfdir}/rcS.d/S90boma-start
    ln -s ../init.d/boma-stop ${D}${sysconfdir}/rc6.d/K10boma-stop
    install -m 0755 ${S}/usr/sbin/boma-supervise ${D}${sbindir}/boma-supervise
    install -m 0755 ${S}/usr/share/udhcpc/boma.script ${D}${datadir}/udhcpc/boma.script
    install -m 0644 ${S}/etc/boma/boma.toml ${D}${sysconfdir}/boma/boma.toml
    install -m 0644 ${S}/etc/boma/routes.toml ${D}${sysconfdir}/boma/routes.toml
    # busybox-mdev's mdev.conf would automount every mmcblk partition: boma mounts its own.
    echo "MDEV_AUTOMOUNT=n" > ${D}${sysconfdir}/default/mdev
    for m in ${BOMA_MODULES_PRELOAD}; do echo "$m"; done > ${D}${sysconfdir}/modules.preload
}

FILES:${PN} += "${datadir}/udhcpc /data"
CONFFILES:${PN} = "${sysconfdir}/boma/boma.toml ${sysconfdir}/boma/routes.toml"
RDEPENDS:${PN} = "boma busybox busybox-mdev e2fsprogs-e2fsck"
