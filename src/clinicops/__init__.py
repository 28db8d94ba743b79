"""clinicops: run clinic operations runbooks across a fleet of clinics."""

__version__ = "0.1.0"
