print("vmssctl")
