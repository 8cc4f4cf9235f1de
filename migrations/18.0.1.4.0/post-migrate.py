def migrate(cr, version):
    """The addon's record rules are loaded once, as a new install has them: an
    administrator's edits to them survive the next module updates."""
    cr.execute(
        """
        UPDATE ir_model_data
           SET noupdate = TRUE
         WHERE module = 'prepaid_postpaid_billing' AND model = 'ir.rule'
        """
    )
