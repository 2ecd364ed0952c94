"""The WireGuard tunnel between an edge stack and a home stack (docs/edge-home.md)."""
