"""Image quality metrics beside SSIM/PSNR (definitions in docs/definitions.md, "Perceptual and edge
metrics"): HaarPSI (:mod:`.haarpsi`), VIF in the pixel domain (:mod:`.vif`), GMSD (:mod:`.gmsd`),
MS-SSIM (:mod:`.msssim`) and HFEN (:mod:`.hfen`), each per slice of (S,H,W) magnitude stacks.
:mod:`.scoring` states how a whole-image metric is scored on a slice and in a region (the region's
bounding box); :mod:`.filters` holds the filters they share.  ``ssimrecon.functional.registry``
lists them with the paper-convention metrics."""
