# `cpack -G DEB` (run in the build folder) makes knn-runner_<version>_<arch>.deb from the install
# rules. Its Depends: line is computed by dpkg-shlibdeps from the libraries the binary links, never
# typed by hand. Included last by the top-level CMakeLists.txt.
set(CPACK_PACKAGE_NAME knn-runner)
set(CPACK_PACKAGE_VENDOR "knn-runner developers")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION "Runs Amazon SageMaker-style k-NN training jobs against any S3-compatible store (Ceph RGW, MinIO, AWS S3) or local files, and serves the trained model with SageMaker's /ping and /invocations contract. Data, manifests, model artifacts and client code move between SageMaker and knn-runner unchanged.")
set(CPACK_PACKAGE_CONTACT "knn-runner developers <knn-runner@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # knn-runner_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RELEASE "")
include(CPack)
