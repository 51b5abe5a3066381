"""The large-print handout: the print handout's stage with the large-print stylesheet, css/pdf-large.css, on top of
the handout's own."""
from .pdf import PdfStage

STAGE = PdfStage(name="pdf-large", stylesheets=("css/pdf.css", "css/pdf-large.css"), suffix=".large-print.pdf")
