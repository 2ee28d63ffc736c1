//! Every keyword OpenSSH 9.2's client accepts (readconf.c's table, Debian's GSSAPI additions
//! included), lowercase. Deprecated and unsupported ones are accepted too, as ssh accepts them
//! (it only warns).

#[rustfmt::skip]
pub(crate) const KEYWORDS: &[&str] = &[
    "addkeystoagent", "addressfamily", "afstokenpassing", "batchmode", "bindaddress",
    "bindinterface", "canonicaldomains", "canonicalizefallbacklocal", "canonicalizehostname",
    "canonicalizemaxdots", "canonicalizepermittedcnames", "casignaturealgorithms",
    "certificatefile", "challengeresponseauthentication", "checkhostip", "cipher", "ciphers",
    "clearallforwardings", "compression", "compressionlevel", "connectionattempts",
    "connecttimeout", "controlmaster", "controlpath", "controlpersist", "dsaauthentication",
    "dynamicforward", "enableescapecommandline", "enablesshkeysign", "escapechar",
    "exitonforwardfailure", "fallbacktorsh", "fingerprinthash", "forkafterauthentication",
    "forwardagent", "forwardx11", "forwardx11timeout", "forwardx11trusted", "gatewayports",
    "globalknownhostsfile", "globalknownhostsfile2", "gssapiauthentication",
    "gssapiclientidentity", "gssapidelegatecredentials", "gssapikeyexchange",
    "gssapikexalgorithms", "gssapirenewalforcesrekey", "gssapiserveridentity", "gssapitrustdns",
    "hashknownhosts", "host", "hostbasedacceptedalgorithms", "hostbasedauthentication",
    "hostbasedkeytypes", "hostkeyalgorithms", "hostkeyalias", "hostname", "identitiesonly",
    "identityagent", "identityfile", "ignoreunknown", "include", "ipqos",
    "kbdinteractiveauthentication", "kbdinteractivedevices", "kerberosauthentication",
    "kerberostgtpassing", "keepalive", "kexalgorithms", "knownhostscommand", "localcommand",
    "localforward", "loglevel", "logverbose", "macs", "match", "nohostauthenticationforlocalhost",
    "numberofpasswordprompts", "passwordauthentication", "permitlocalcommand", "permitremoteopen",
    "pkcs11provider", "port", "preferredauthentications", "protocol", "proxycommand",
    "proxyjump", "proxyusefdpass", "pubkeyacceptedalgorithms", "pubkeyacceptedkeytypes",
    "pubkeyauthentication", "rekeylimit", "remotecommand", "remoteforward", "requesttty",
    "requiredrsasize", "revokedhostkeys", "rhostsauthentication", "rhostsrsaauthentication",
    "rsaauthentication", "securitykeyprovider", "sendenv", "serveralivecountmax",
    "serveraliveinterval", "sessiontype", "setenv", "skeyauthentication", "smartcarddevice",
    "stdinnull", "streamlocalbindmask", "streamlocalbindunlink", "stricthostkeychecking",
    "syslogfacility", "tcpkeepalive", "tisauthentication", "tunnel", "tunneldevice",
    "updatehostkeys", "useprivilegedport", "user", "userknownhostsfile", "userknownhostsfile2",
    "useroaming", "usersh", "verifyhostkeydns", "visualhostkey", "xauthlocation",
];

/// Options whose every occurrence adds values (in order) instead of the first one winning.
#[rustfmt::skip]
pub(crate) const ACCUMULATE: &[&str] = &[
    "identityfile", "certificatefile", "sendenv", "setenv", "localforward", "remoteforward",
    "dynamicforward", "permitremoteopen",
];

pub(crate) fn known(keyword: &str) -> bool {
    KEYWORDS.contains(&keyword)
}
