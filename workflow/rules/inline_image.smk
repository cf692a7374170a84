# The `inlineimage` reStructuredText directive of the report's landing page.
#
# `.. inlineimage:: results/<experiment>/figures/figure2.png` in workflow/report/workflow.rst shows
# the image itself on the report's landing page. Snakemake's own `embeddedimage` never embeds: its
# mixin comes after Image in the MRO, so the data URI it makes is not used.
from docutils.parsers.rst import directives as rst_directives
from docutils.parsers.rst.directives.images import Image as RstImage
from snakemake.report.common import data_uri_from_file


class InlineImage(RstImage):
    """An rst image whose file (a path from the workflow's folder) is embedded as a data URI."""

    def run(self):
        self.arguments[0] = data_uri_from_file(rst_directives.uri(self.arguments[0]))
        return super().run()


rst_directives.register_directive("inlineimage", InlineImage)
