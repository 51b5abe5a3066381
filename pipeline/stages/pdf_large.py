"""The large-print handout: the print handout's stage under the large-print stylesheet, css/pdf-large.css."""
from .pdf import PdfStage

STAGE = PdfStage(name="pdf-large", stylesheet="css/pdf-large.css", suffix=".large-print.pdf")
