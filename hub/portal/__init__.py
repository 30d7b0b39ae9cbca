"""The public Wi-Fi's captive portal: splash page, OS probes, RFC 8908 API, admission through nftables."""
