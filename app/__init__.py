"""Audience: mass contact management for marketing automation."""
