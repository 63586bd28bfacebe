import AzureModel
