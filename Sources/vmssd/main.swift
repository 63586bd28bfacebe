print("vmssd")
