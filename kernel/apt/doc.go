// Package apt is a small, verifying client for Debian archives. It fetches
// binary packages (kernels, Raspberry Pi firmware) straight from a Debian
// mirror over HTTP(S), checking them the way apt does, without apt, dpkg or
// root:
//
//  1. dists/<suite>/InRelease is downloaded and its clearsigned OpenPGP
//     signature is verified against a keyring of Debian archive keys
//     (Client.Release). Expired or revoked keys are refused, and so is a
//     Release file whose Valid-Until date has passed.
//  2. The Packages index of a component and architecture is downloaded and its
//     size and SHA-256 are checked against the signed InRelease
//     (Client.Lookup).
//  3. The .deb named by the index is downloaded and its size and SHA-256 are
//     checked against the index (Client.Fetch).
//
// Everything is cached under Client.CacheDir (by default
// $XDG_CACHE_HOME/ramboot/apt or ~/.cache/ramboot/apt): InRelease files per
// mirror and suite, and Packages indexes and .deb files named by their
// SHA-256. With Client.Offline set, nothing is downloaded and the cache is
// used, still verified: the cached InRelease signature is checked again, and
// cached files are hashed again.
//
// # Keyring
//
// LoadKeyring with no arguments uses the keyring of the debian-archive-keyring
// package, /usr/share/keyrings/debian-archive-keyring.gpg, when it exists,
// together with a copy of that file embedded in the ramboot binary (taken
// from a Debian 12 host; see keys/). The embedded copy lets hosts that are not
// Debian (other distributions, macOS) verify Debian archives too. Keys of
// releases newer than the embedded copy are only known when the host's
// keyring has them; pass an up-to-date keyring file to LoadKeyring otherwise.
//
// # Mirror
//
// MirrorFromSources finds the Debian mirror configured in a host's apt
// sources, so that ramboot downloads from the same mirror as the host.
package apt
