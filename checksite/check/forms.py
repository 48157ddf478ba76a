"""The check form (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Field, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from checksite.checks.context import TargetError
from checksite.checks.ews_access import service_account_credentials


class CheckForm(FlaskForm):
    target = StringField(
        "Domain or mailbox address",
        validators=[DataRequired(message="Enter a domain or a mailbox address."), Length(max=320)],
        description="For example contoso.com or someone@contoso.com",
    )
    password = PasswordField(
        "Mailbox password (optional)",
        validators=[Optional(), Length(max=256)],
        description="Only for on-premises Exchange: lets the check read the EWS settings. "
        "It is used for this check only and never stored.",
    )
    superoffice_url = StringField(
        "SuperOffice URL (optional)",
        validators=[Optional(), Length(max=500)],
        description="For example https://crm.example.com/SuperOffice",
    )
    superoffice_username = StringField(
        "SuperOffice user name (optional, Onsite)",
        validators=[Optional(), Length(max=200)],
        description="An administrator's SuperOffice login, to check the role.",
    )
    superoffice_password = PasswordField(
        "SuperOffice password (optional)", validators=[Optional(), Length(max=256)]
    )
    ews_url = StringField(
        "EWS URL (optional)",
        validators=[Optional(), Length(max=500)],
        description="https only, for example https://mail.contoso.com/EWS/Exchange.asmx",
    )
    oab_url = StringField(
        "OAB URL (optional)",
        validators=[Optional(), Length(max=500)],
        description="https only, for example https://mail.contoso.com/OAB/",
    )
    service_account = StringField(
        "Service account (optional)",
        validators=[Length(max=320)],
        description="An Exchange account with the ApplicationImpersonation role, as "
        "svc@contoso.com or CONTOSO\\svc: the check impersonates the mailbox above with it. "
        "Used for this check only and never stored.",
    )
    service_password = PasswordField(
        "Service account password", validators=[Optional(), Length(max=256)]
    )

    def validate_service_account(self, field: Field) -> None:
        try:
            service_account_credentials(field.data, self.service_password.data)
        except TargetError as exc:
            raise ValidationError(str(exc)[:1].upper() + str(exc)[1:] + ".") from None


class DeleteForm(FlaskForm):
    """Deleting a report from its page: no fields, only the CSRF token."""
