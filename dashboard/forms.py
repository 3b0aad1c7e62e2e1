"""The dashboard's forms; Flask-WTF adds the CSRF token to each."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from dashboard.models import WrapTopic

WRAP_TOPICS = [
    SelectChoice(WrapTopic.BUG.value, "Ошибка в программе (баг)"),
    SelectChoice(WrapTopic.HOWTO.value, "Вопрос по работе с OneRPA"),
    SelectChoice(WrapTopic.LICENSING.value, "Лицензии, покупка, обновления"),
    SelectChoice(WrapTopic.OTHER.value, "Другое"),
]
BUG_ANSWER_NEEDED = "Для ошибки укажите, подтвердилась ли она"
YES_NO = [SelectChoice("yes", "Да"), SelectChoice("no", "Нет")]
BUG_STATES = [
    SelectChoice("yes", "Да, подтверждена"),
    SelectChoice("no", "Нет, не подтверждена"),
    SelectChoice("unknown", "Неясно"),
]


class LoginForm(FlaskForm):
    username = StringField("Имя пользователя", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Пароль", validators=[DataRequired(), Length(max=256)])


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST."""


class WrapupForm(FlaskForm):
    topic = RadioField("Тема звонка", choices=WRAP_TOPICS, validators=[InputRequired()])
    about_onerpa = RadioField(
        "Вопрос касался OneRPA?", choices=YES_NO, validators=[InputRequired()]
    )
    bug_confirmed = RadioField(
        "Грубая ошибка подтверждена?", choices=BUG_STATES, validators=[Optional()]
    )
    notes = TextAreaField("Заметки", validators=[Optional(), Length(max=4000)])

    def validate(self, extra_validators: Any = None) -> bool:
        """Validate the fields; a bug also needs the answer on its confirmation."""
        valid = super().validate(extra_validators)
        if self.topic.data == WrapTopic.BUG and not self.bug_confirmed.data:
            self.bug_confirmed.errors = [*self.bug_confirmed.errors, BUG_ANSWER_NEEDED]
            return False
        return valid

    def bug_state(self) -> bool | None:
        """Return the bug answer as stored: True, False or None (not a bug / unclear)."""
        if self.topic.data != WrapTopic.BUG:
            return None
        return {"yes": True, "no": False}.get(self.bug_confirmed.data or "")


class RefusalForm(FlaskForm):
    reason = TextAreaField("Причина отказа", validators=[DataRequired(), Length(max=2000)])
    until = DateField("Действует до (включительно)", validators=[Optional()])


class LiftForm(FlaskForm):
    lift_reason = StringField("Почему снимаем", validators=[DataRequired(), Length(max=2000)])
