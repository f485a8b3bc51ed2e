import TriplineConfig

/// The configuration the commands read (`tripline.yaml`, SPEC §6).
typealias Settings = Configuration
