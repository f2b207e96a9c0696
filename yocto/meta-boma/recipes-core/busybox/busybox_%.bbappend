# Applets boma's start-up script uses that oe-core's defconfig leaves out (findfs, watchdog);
# only for DISTRO = "boma".
FILESEXTRAPATHS:prepend:boma := "${THISDIR}/files:"
SRC_URI:append:boma = " file://boma.cfg"
