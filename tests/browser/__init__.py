"""Tests that drive Debian's Chromium (``/usr/bin/chromium``) through Playwright against the real API over HTTP."""
