SUMMARY = "boma's init for a busybox system: start-up, supervision, shutdown"
DESCRIPTION = "busybox init configuration, rcS/rcK, boma-supervise and the default \
               boma.toml, the same files as the SD-card image built by boma's image/ builder."
HOMEPAGE = "https://github.com/boma-gateway/boma"
BUGTRACKER = "https://github.com/boma-gateway/boma/issues"
SECTION = "base"
CVE_PRODUCT = "boma"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# One source of truth: the image builder's overlay in boma's tree (this layer lives in it).
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${THISDIR}/../../../../image/overlay:"

SRC_URI = "file://etc/inittab \
           file://etc/init.d/rcS \
           file://etc/init.d/rcK \
           file://usr/sbin/boma-supervise \
           file://usr/share/udhcpc/default.script \
           file://etc/boma/boma.toml \
           file://etc/boma/routes.toml"

S = "${WORKDIR}/sources"
UNPACKDIR ??= "${WORKDIR}"

do_install() {
    install -d ${D}${sysconfdir}/init.d ${D}${sysconfdir}/boma ${D}${sbindir} ${D}${datadir}/udhcpc
    install -m 0644 ${UNPACKDIR}/etc/inittab ${D}${sysconfdir}/inittab
    install -m 0755 ${UNPACKDIR}/etc/init.d/rcS ${D}${sysconfdir}/init.d/rcS
    install -m 0755 ${UNPACKDIR}/etc/init.d/rcK ${D}${sysconfdir}/init.d/rcK
    install -m 0755 ${UNPACKDIR}/usr/sbin/boma-supervise ${D}${sbindir}/boma-supervise
    install -m 0755 ${UNPACKDIR}/usr/share/udhcpc/default.script ${D}${datadir}/udhcpc/default.script
    install -m 0644 ${UNPACKDIR}/etc/boma/boma.toml ${D}${sysconfdir}/boma/boma.toml
    install -m 0644 ${UNPACKDIR}/etc/boma/routes.toml ${D}${sysconfdir}/boma/routes.toml
}

FILES:${PN} += "${datadir}/udhcpc"
CONFFILES:${PN} = "${sysconfdir}/boma/boma.toml ${sysconfdir}/boma/routes.toml"
RDEPENDS:${PN} = "boma busybox"
