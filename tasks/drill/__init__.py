"""Drills as real processes on 127.0.0.1: stand-ins, fault proxy, the drilled service, load, orchestration."""
