"""Shared web plumbing: errors, parameter parsing, roles, security headers, layout."""
