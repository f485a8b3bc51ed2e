import TriplineCLI

await Tripline.entry()
