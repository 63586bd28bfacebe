internal import CInstancesProto

func placeholderSize() -> Int {
    var request = Cloudprovider__Instances__V1__ProviderIDRequest()
    cloudprovider__instances__v1__provider_idrequest__init(&request)
    return cloudprovider__instances__v1__provider_idrequest__get_packed_size(&request)
}
