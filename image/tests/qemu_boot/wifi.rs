//! The Wi-Fi scenario, run in a qemu-virt boot the power-cut test has already made: the
//! operator's boma.toml gets an access point on the LAN bridge, boma is restarted the way a
//! crash or an edit would restart it, the image unpacks its Wi-Fi archive (hostapd, the
//! wireless modules), QEMU's kernel simulates two radios (`mac80211_hwsim`, from the archive)
//! and boma runs hostapd on the first. A client on the second radio, moved into a network
//! namespace of its own inside the guest, joins with Debian's wpa_supplicant (WPA2-PSK), gets a
//! lease from boma's DHCP server over the air, resolves the gateway through boma's DNS and
//! fetches the API through the proxy. Then boma joins an uplink network as a Wi-Fi client (its
//! WAN), and last the access point is the LAN itself, without a bridge (the Zero 2 W's layout).
//! The passphrase never appears on the console: boma's log, hostapd's and wpa_supplicant's output
//! and the shell's echo are all there.

use std::time::Duration;

use boma_image::qemu::Guest;

use super::guest::{memory_figure, shell, shell_output};

/// The passphrase, and how the shell is told it without the console showing it: an octal
/// escape that printf turns back into the `s`.
const PASSPHRASE: &str = "village-secret-42";
const TYPED: &str = "village-\\163ecret-42";

/// The client in its namespace joins boma-test with wpa_supplicant and asks for a lease; its
/// script prints `client-lease <ip> via <router> dns <dns>`.
const JOIN: &str = "nsenter -t $(cat /tmp/client.pid) -n sh -c 'ip link set lo up; ip link set wlan1 up; \
    wpa_supplicant -B -D nl80211 -i wlan1 -c /tmp/client.conf >/dev/null; \
    udhcpc -i wlan1 -n -q -t 40 -T 1 -s /tmp/client.sh -x hostname:wifi-client 2>/dev/null'";

/// Run the scenario in `g` (serving, no LAN NIC), then put boma.toml back.
pub fn access_point_serves_a_wpa_client(g: &mut Guest) {
    // The operator's edit: the LAN becomes a bridge the access point joins, and [wifi].
    shell(g, "cp /boot/boma.toml /tmp/boma.toml.orig", 905);
    let sed = "-e 's/^interface = \"eth1\"$/interface = \"br-lan\"/' \
               -e '/^interface = \"br-lan\"$/a bridge = [\"wlan0\"]'";
    let keys = "mode = \"ap\"\nssid = \"boma-test\"\nchannel = 6\n";
    let from = reconfigure(g, sed, keys, "", 910);
    let wait = |g: &mut Guest, needle: &str, secs: u64| {
        let found = g.wait_for(needle, from, Duration::from_secs(secs));
        assert!(
            found.is_some(),
            "no `{needle}` on the console:\n{}",
            g.console()
        );
    };
    wait(g, "boma-wifi-unpack: Wi-Fi unpacked", 90);
    // The radios' driver came with the archive. Two simulated radios: phy0/wlan0 for boma,
    // phy1/wlan1 for the client.
    let out = shell_output(
        g,
        "modprobe mac80211_hwsim && ls /sys/class/ieee80211 /sys/class/net",
        915,
    );
    assert!(out.contains("wlan0") && out.contains("wlan1"), "{out}");
    wait(g, "AP-ENABLED", 60);
    // The client: its own network namespace holding phy1, wpa_supplicant, busybox udhcpc with
    // a script that only sets the address and prints the lease.
    let client = format!(
        "unshare -n sleep 900 & echo $! > /tmp/client.pid; sleep 0.5; \
         iw phy phy1 set netns $(cat /tmp/client.pid) \
         && printf 'network={{\\n ssid=\"boma-test\"\\n psk=\"{TYPED}\"\\n key_mgmt=WPA-PSK\\n}}\\n' > /tmp/client.conf \
         && printf '#!/bin/sh\\n[ \"$1\" = bound ] && ip addr add $ip/$mask dev $interface && echo \"client-lease $ip via $router dns $dns\"\\n' > /tmp/client.sh \
         && chmod +x /tmp/client.sh"
    );
    shell(g, &client, 920);
    client_lease(g, 930, "over Wi-Fi on the LAN bridge");
    assert!(
        g.console().contains("AP-STA-CONNECTED"),
        "hostapd never saw the client:\n{}",
        g.console()
    );
    // boma's DNS names the gateway; the proxy serves the API to the Wi-Fi client.
    let ns = "nsenter -t $(cat /tmp/client.pid) -n";
    let out = shell_output(
        g,
        &format!(
            "{ns} nslookup gateway.village.lan 10.66.0.1; {ns} wget -q -O - \
             --header 'Host: gateway.village.lan' http://admin:village@10.66.0.1/api/version; echo"
        ),
        940,
    );
    assert!(
        out.contains("Address: 10.66.0.1") || out.contains("Address 1: 10.66.0.1"),
        "DNS over Wi-Fi:\n{out}"
    );
    assert!(
        out.contains("\"Codename\":\"boma\""),
        "proxy over Wi-Fi:\n{out}"
    );
    // hostapd's file is the owner's only, and holds the derived key, not the passphrase.
    let out = shell_output(
        g,
        "ls -l /run/boma/hostapd.conf; grep -c wpa_psk= /run/boma/hostapd.conf",
        950,
    );
    assert!(out.contains("-rw-------"), "{out}");
    memory_figure(
        g,
        "qemu-virt with the Wi-Fi access point up and a client joined",
    );
    client_mode_is_the_wan(g);
    access_point_is_the_lan(g);
    let console = g.console();
    assert!(
        !console.contains(PASSPHRASE),
        "the passphrase reached the console"
    );
    // boma.toml as it was, for whatever the boot does next.
    shell(
        g,
        "mount -o remount,rw /boot && cp /tmp/boma.toml.orig /boot/boma.toml && mount -o remount,ro /boot",
        960,
    );
}

/// The roles swapped: the namespace runs an uplink network (hostapd and busybox udhcpd on the
/// second radio), and boma, with `[wifi] mode = "client"` and `[wan] interface = "wlan0"`,
/// joins it with wpa_supplicant and takes its WAN address from it with udhcpc. boma's own
/// hostapd, stopped with SIGTERM, has given the radio back (out of the bridge, out of AP mode).
/// The client's wpa_supplicant must have let go of the second radio before hostapd takes it
/// (`killall` does not wait; once, hostapd started too early and the uplink never came up).
fn client_mode_is_the_wan(g: &mut Guest) {
    let uplink = format!(
        "killall wpa_supplicant; \
         i=0; while [ $i -lt 50 ] && pidof wpa_supplicant >/dev/null; do sleep 0.1; i=$((i + 1)); done; \
         printf 'interface=wlan1\\ndriver=nl80211\\nssid=boma-uplink\\ncountry_code=DE\\nhw_mode=g\\nchannel=1\\nwpa=2\\nwpa_key_mgmt=WPA-PSK\\nrsn_pairwise=CCMP\\nwpa_passphrase={TYPED}\\n' > /tmp/up.conf \
         && printf 'start 10.77.0.50\\nend 10.77.0.60\\ninterface wlan1\\nlease_file /tmp/up.leases\\noption subnet 255.255.255.0\\noption router 10.77.0.1\\noption dns 10.77.0.1\\n' > /tmp/up-dhcpd.conf \
         && touch /tmp/up.leases \
         && nsenter -t $(cat /tmp/client.pid) -n sh -c 'ip addr flush dev wlan1; ip addr add 10.77.0.1/24 dev wlan1; \
            hostapd -B /tmp/up.conf >/dev/null && udhcpd /tmp/up-dhcpd.conf'"
    );
    shell(g, &uplink, 970);
    let sed = "-e 's/^interface = \"eth0\"$/interface = \"wlan0\"/'";
    let keys = "mode = \"client\"\nssid = \"boma-uplink\"\n";
    let from = reconfigure(g, sed, keys, "", 980);
    let lease = g.wait_for(
        "boma-init: DHCP lease 10.77.0.",
        from,
        Duration::from_secs(90),
    );
    assert!(
        lease.is_some(),
        "no WAN lease over Wi-Fi in client mode:\n{}",
        g.console()
    );
    let console = g.console();
    // wpa_supplicant's own words, on the console boma shares with it.
    assert!(
        console[from..].contains("CTRL-EVENT-CONNECTED"),
        "{console}"
    );
    assert!(
        console[from..].contains(" on wlan0 via 10.77.0.1"),
        "{console}"
    );
}

/// The Zero 2 W's layout: the access point is the LAN itself (`[lan] interface = "wlan0"`, no
/// bridge), its address on the radio, which hostapd switches to AP mode under it. The client
/// joins again and gets a lease from boma. (wlan0's WAN address of the previous phase is
/// flushed first: on a board the edit would come with a reboot.)
fn access_point_is_the_lan(g: &mut Guest) {
    let stop_uplink = "nsenter -t $(cat /tmp/client.pid) -n sh -c 'killall hostapd udhcpd; \
        ip addr flush dev wlan1'; sleep 1";
    shell(g, stop_uplink, 990);
    let sed = "-e 's/^interface = \"eth1\"$/interface = \"wlan0\"/'";
    let keys = "mode = \"ap\"\nssid = \"boma-test\"\n";
    let from = reconfigure(g, sed, keys, "ip addr flush dev wlan0 && ", 1000);
    let up = g.wait_for("AP-ENABLED", from, Duration::from_secs(60));
    assert!(
        up.is_some(),
        "no access point on wlan0 as the LAN:\n{}",
        g.console()
    );
    client_lease(g, 1010, "with wlan0 as the LAN");
}

/// The operator's edit: `/boot/boma.toml` becomes the original with `sed` applied and a
/// `[wifi]` section appended: `keys` (TOML lines) with the passphrase (typed escaped) and the
/// country. It passes `boma check`, `then` runs, and boma is restarted. The console position
/// before it.
fn reconfigure(g: &mut Guest, sed: &str, keys: &str, then: &str, marker: u32) -> usize {
    // For printf's format in double quotes: `"` escaped for the shell, newlines as `\n`.
    let keys = keys.replace('"', "\\\"").replace('\n', "\\n");
    let wifi = format!("[wifi]\\n{keys}passphrase = \\\"{TYPED}\\\"\\ncountry = \\\"DE\\\"\\n");
    let edit = format!(
        "mount -o remount,rw /boot && sed {sed} /tmp/boma.toml.orig > /boot/boma.toml \
         && printf \"{wifi}\" >> /boot/boma.toml && mount -o remount,ro /boot \
         && boma check /boot/boma.toml && {then}killall boma"
    );
    let from = g.console().len();
    shell(g, &edit, marker);
    from
}

/// The client joins boma-test and gets a lease from boma's LAN (10.66.0.0/24, boma as router
/// and DNS server).
fn client_lease(g: &mut Guest, marker: u32, what: &str) {
    let out = shell_output_slow(g, JOIN, marker, 90);
    let lease = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-lease "))
        .unwrap_or_else(|| panic!("no lease {what}:\n{}", g.console()))
        .to_string();
    assert!(
        lease.starts_with("10.66.0.") && lease.contains(" via 10.66.0.1 dns 10.66.0.1"),
        "{what}: {lease}"
    );
}

/// `shell_output` with a longer wait, for a command that takes its time (joining, DHCP).
fn shell_output_slow(g: &mut Guest, command: &str, marker: u32, secs: u64) -> String {
    let from = g.console().len();
    g.send(&format!("{command}; echo DONE-$(({marker} + 1))"))
        .expect("console");
    let done = format!("DONE-{}", marker + 1);
    assert!(
        g.wait_for(&done, from, Duration::from_secs(secs)).is_some(),
        "`{command}` did not finish; console:\n{}",
        g.console()
    );
    g.console()[from..].to_string()
}
