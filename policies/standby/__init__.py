"""Standby family: which standby copies to keep warm at which sites, for all scenarios at once."""
