import TriplineCLI

Tripline.main()
