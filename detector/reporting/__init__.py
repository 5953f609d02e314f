"""What an analysis becomes: the JSON/CSV record, the PDF, the paper's tables, drawings."""
